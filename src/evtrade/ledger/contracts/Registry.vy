# pragma version ~=0.4.3
"""
@title Identity registry of vehicles and roadside units
@notice The certificate authority (ETA section III.A, spec section 5) binds
        each vehicle's address to a hash of its plate with a certificate
        expiry, and registers the RSUs that run trading rounds. RSU membership
        can also change by a vote of more than half of the current RSUs, the
        signer voting of the papers' proof-of-authority chain.
@dev Trust model: the authority is trusted to certify one account per real
     vehicle (the contract enforces one valid account per plate hash) and to
     mint only against top-ups; RSUs are trusted by majority, never singly:
     one RSU cannot add or remove another. A vote is for an outcome
     (candidate, add or remove, epoch): nothing else a voter sends splits it.
"""

event VehicleRegistered:
    vehicle: indexed(address)
    plate_hash: bytes32
    expiry: uint256

event VehicleRevoked:
    vehicle: indexed(address)

event RsuAdded:
    rsu: indexed(address)
    pubkey: Bytes[64]

event RsuRemoved:
    rsu: indexed(address)

event RsuVote:
    voter: indexed(address)
    candidate: indexed(address)
    add: bool
    votes: uint256
    members: uint256

struct Vehicle:
    plate_hash: bytes32
    expiry: uint256
    active: bool

authority: public(address)
vehicles: public(HashMap[address, Vehicle])
is_rsu: public(HashMap[address, bool])
rsu_pubkey: public(HashMap[address, Bytes[64]])
rsu_count: public(uint256)
# The epoch at which each current RSU joined (0: not an RSU). A market round records its RSU's
# term, so a round outlives neither its RSU's removal nor a later re-admission.
rsu_term: public(HashMap[address, uint256])
# The account a plate hash is certified to: one valid account per vehicle.
plate_owner: public(HashMap[bytes32, address])
# Membership changes bump the epoch, so votes cast before a change lapse.
epoch: public(uint256)
_votes: HashMap[bytes32, uint256]
_voted: HashMap[bytes32, HashMap[address, bool]]


@deploy
def __init__():
    """
    @notice The deployer becomes the certificate authority.
    """
    self.authority = msg.sender


@external
def register_vehicle(vehicle: address, plate_hash: bytes32, expiry: uint256):
    """
    @notice Register (or renew) a vehicle's certificate.
    @param vehicle The vehicle's account.
    @param plate_hash keccak256 of the licence plate (the plate stays off chain).
    @param expiry Unix time after which the certificate is no longer valid.
    """
    assert msg.sender == self.authority, "registry: caller is not the authority"
    assert vehicle != empty(address), "registry: zero address"
    assert plate_hash != empty(bytes32), "registry: empty plate hash"
    assert expiry > block.timestamp, "registry: expiry in the past"
    assert not self.is_rsu[vehicle], "registry: address is an RSU"
    owner: address = self.plate_owner[plate_hash]
    assert owner == empty(address) or owner == vehicle or not self._valid(owner), (
        "registry: plate certified to another vehicle"
    )
    previous: bytes32 = self.vehicles[vehicle].plate_hash
    if previous != plate_hash and self.plate_owner[previous] == vehicle:
        self.plate_owner[previous] = empty(address)
    self.plate_owner[plate_hash] = vehicle
    self.vehicles[vehicle] = Vehicle(plate_hash=plate_hash, expiry=expiry, active=True)
    log VehicleRegistered(vehicle=vehicle, plate_hash=plate_hash, expiry=expiry)


@external
def revoke_vehicle(vehicle: address):
    """
    @notice Revoke a vehicle's certificate.
    @param vehicle The vehicle's account.
    """
    assert msg.sender == self.authority, "registry: caller is not the authority"
    assert self.vehicles[vehicle].active, "registry: vehicle not registered"
    self.vehicles[vehicle].active = False
    log VehicleRevoked(vehicle=vehicle)


@view
@external
def is_valid_vehicle(vehicle: address) -> bool:
    """
    @notice True when the vehicle is registered, not revoked and not expired.
    @param vehicle The vehicle's account.
    """
    return self._valid(vehicle)


@internal
@view
def _valid(vehicle: address) -> bool:
    record: Vehicle = self.vehicles[vehicle]
    return record.active and record.expiry > block.timestamp


@external
def register_rsu(rsu: address, pubkey: Bytes[64]):
    """
    @notice The authority adds an RSU.
    @param rsu The RSU's account.
    @param pubkey The RSU's uncompressed secp256k1 public key (64 bytes);
           vehicles encrypt sealed bids to it.
    """
    assert msg.sender == self.authority, "registry: caller is not the authority"
    self._add_rsu(rsu, pubkey)


@external
def revoke_rsu(rsu: address):
    """
    @notice The authority removes an RSU.
    @param rsu The RSU's account.
    """
    assert msg.sender == self.authority, "registry: caller is not the authority"
    assert self.is_rsu[rsu], "registry: not an RSU"
    self._remove_rsu(rsu)


@external
def vote_rsu(candidate: address, add: bool, pubkey: Bytes[64]) -> bool:
    """
    @notice A current RSU votes to add or remove an RSU; the change applies
            once more than half of the current RSUs voted for it.
    @param candidate The RSU to add or remove.
    @param add True to add, False to remove.
    @param pubkey The candidate's public key when adding (ignored when removing).
    @return True when this vote applied the change.
    @dev The vote key is (candidate, add, epoch): the public key is not in it.
         When adding, the key must hash to the candidate's address, so it is
         fixed by the candidate; when removing it is ignored. Two voters can
         therefore never split one outcome into two tallies.
    """
    assert self.is_rsu[msg.sender], "registry: caller is not an RSU"
    if add:
        assert not self.is_rsu[candidate], "registry: already an RSU"
        self._check_pubkey(candidate, pubkey)
    else:
        assert self.is_rsu[candidate], "registry: not an RSU"
    key: bytes32 = keccak256(abi_encode(candidate, add, self.epoch))
    assert not self._voted[key][msg.sender], "registry: already voted"
    self._voted[key][msg.sender] = True
    votes: uint256 = self._votes[key] + 1
    self._votes[key] = votes
    members: uint256 = self.rsu_count
    log RsuVote(voter=msg.sender, candidate=candidate, add=add, votes=votes, members=members)
    if votes * 2 <= members:
        return False
    if add:
        self._add_rsu(candidate, pubkey)
    else:
        self._remove_rsu(candidate)
    return True


@internal
@pure
def _pubkey_address(pubkey: Bytes[64]) -> address:
    return convert(convert(slice(keccak256(pubkey), 12, 20), bytes20), address)


@internal
def _check_pubkey(rsu: address, pubkey: Bytes[64]):
    assert len(pubkey) == 64, "registry: public key must be 64 bytes"
    assert self._pubkey_address(pubkey) == rsu, "registry: public key does not match address"


@internal
def _add_rsu(rsu: address, pubkey: Bytes[64]):
    assert not self.is_rsu[rsu], "registry: already an RSU"
    assert not self.vehicles[rsu].active, "registry: address is a vehicle"
    self._check_pubkey(rsu, pubkey)
    self.is_rsu[rsu] = True
    self.rsu_pubkey[rsu] = pubkey
    self.rsu_count += 1
    self.epoch += 1
    self.rsu_term[rsu] = self.epoch
    log RsuAdded(rsu=rsu, pubkey=pubkey)


@internal
def _remove_rsu(rsu: address):
    self.is_rsu[rsu] = False
    self.rsu_pubkey[rsu] = b""
    self.rsu_term[rsu] = 0
    self.rsu_count -= 1
    self.epoch += 1
    log RsuRemoved(rsu=rsu)
