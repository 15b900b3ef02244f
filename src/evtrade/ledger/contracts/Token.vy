# pragma version ~=0.4.3
"""
@title Energy-trading token (the balances B_q of ETA's accounts)
@notice A plain ERC-20 whose supply only the certificate authority mints,
        when a vehicle tops up its account. Any holder may burn its own
        tokens: the market burns forfeited bid deposits, so that nobody (the
        RSU least of all) profits from a bid that was never revealed.
"""
from ethereum.ercs import IERC20

implements: IERC20

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
minter: public(address)


@deploy
def __init__(name_: String[32], symbol_: String[8]):
    """
    @notice The deployer (the authority) is the only minter.
    """
    self.name = name_
    self.symbol = symbol_
    self.minter = msg.sender


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Move `amount` of the caller's tokens to `receiver`.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Let `spender` move up to `amount` of the caller's tokens.
    """
    assert spender != empty(address), "token: approve to the zero address"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Move `amount` of `sender`'s tokens within the caller's allowance.
    """
    allowed: uint256 = self.allowance[sender][msg.sender]
    assert allowed >= amount, "token: insufficient allowance"
    if allowed != max_value(uint256):
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice The authority credits a vehicle's top-up.
    """
    assert msg.sender == self.minter, "token: caller is not the minter"
    assert receiver != empty(address), "token: mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def burn(amount: uint256):
    """
    @notice Destroy `amount` of the caller's tokens (the supply shrinks).
    """
    balance: uint256 = self.balanceOf[msg.sender]
    assert balance >= amount, "token: insufficient balance"
    self.balanceOf[msg.sender] = balance - amount
    self.totalSupply -= amount
    log Transfer(sender=msg.sender, receiver=empty(address), value=amount)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "token: transfer to the zero address"
    balance: uint256 = self.balanceOf[sender]
    assert balance >= amount, "token: insufficient balance"
    self.balanceOf[sender] = balance - amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
