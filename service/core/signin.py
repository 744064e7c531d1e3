"""Sign-in limits: wrong passwords counted in Redis over short windows, three ways.

- one account from one address: SIGNIN_FAILURES_PER_ACCOUNT_ADDRESS (5) in SIGNIN_WINDOW_SECONDS (300)
  lock that pair for SIGNIN_LOCK_SECONDS (300), doubling with each lock that day up to
  SIGNIN_LOCK_MAX_SECONDS (3600): the guesser at one place waits longer and longer, the officer
  at their own desk is not touched;
- one account from anywhere: SIGNIN_FAILURES_PER_ACCOUNT (20) lock the account for SIGNIN_LOCK_SECONDS,
  never longer (guessing spread over many addresses is slowed; an attacker cannot keep an officer
  out for more than minutes at a time);
- one address over every account: SIGNIN_FAILURES_PER_ADDRESS (50) lock the address, growing.

A locked caller gets 429 with Retry-After before any password work. Unknown usernames count like
known ones (the answer says nothing about which exist). Redis away: sign-in goes on unlimited and
the failure is logged — officers must be able to sign in during an outage."""
from __future__ import annotations

from dataclasses import dataclass

from service.core.errors import TooManyRequests
from service.core.logging import log
from service.core.redis import key


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str  # what the counter is per: pair, account, address
    id: str
    limit: int
    grows: bool

    def counter(self) -> str:
        return key(f"signin:fail:{self.name}:{self.id}")

    def lock(self) -> str:
        return key(f"signin:lock:{self.name}:{self.id}")

    def locks_today(self) -> str:
        return key(f"signin:locks:{self.name}:{self.id}")


class SignInLimits:
    def __init__(self, aredis, settings):
        self.redis, self.s = aredis, settings

    def _scopes(self, username: str, address: str) -> list[_Scope]:
        s = self.s
        return [_Scope("pair", f"{address}|{username}", s.signin_failures_per_account_address, True),
                _Scope("account", username, s.signin_failures_per_account, False),
                _Scope("address", address, s.signin_failures_per_address, True)]

    async def check(self, username: str, address: str) -> None:
        """429 when any of the caller's locks holds."""
        try:
            ttls = await self.redis.eval(_LOCKED, 3, *(sc.lock() for sc in self._scopes(username, address)))
        except Exception as exc:
            log.warning("signin_limits_unavailable", error=str(exc))
            return
        wait = max(int(t) for t in ttls)
        if wait > 0:
            raise TooManyRequests("too many wrong passwords; try again later", retry_after=wait)

    async def failed(self, username: str, address: str) -> None:
        s = self.s
        try:
            for sc in self._scopes(username, address):
                await self.redis.eval(_FAILED, 3, sc.counter(), sc.lock(), sc.locks_today(), sc.limit,
                                      s.signin_window_seconds, s.signin_lock_seconds,
                                      s.signin_lock_max_seconds if sc.grows else s.signin_lock_seconds)
        except Exception as exc:
            log.warning("signin_limits_unavailable", error=str(exc))

    async def succeeded(self, username: str, address: str) -> None:
        """The officer got in from here: this pair starts again (the account's count does not: a
        distributed guesser must not be reset by the officer's own sign-in)."""
        try:
            await self.redis.delete(self._scopes(username, address)[0].counter())
        except Exception as exc:
            log.warning("signin_limits_unavailable", error=str(exc))


# → the seconds each lock still holds (0: none)
_LOCKED = """
local out = {}
for i, k in ipairs(KEYS) do
  local t = redis.call('TTL', k)
  if t < 0 then t = 0 end
  out[i] = t
end
return out
"""

# One failure: count it in the window; at the limit, lock for base * 2^(locks today), at most max.
_FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  local locks = redis.call('INCR', KEYS[3])
  if locks == 1 then redis.call('EXPIRE', KEYS[3], 86400) end
  local secs = math.min(tonumber(ARGV[3]) * 2 ^ (locks - 1), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], '1', 'EX', math.floor(secs))
end
return n
"""
