"""Chunked uploads in Redis: a client splits a payload too large for one request into chunks, any gateway
replica takes any chunk, and the whole is handed over only after its size and SHA-256 check out (the
rules are in `domain/uploads.py`).

State lives in Redis. All keys of one owner share a hash tag, so each operation is one atomic script even
on Redis Cluster, and another owner's upload is simply a key that does not exist. Every key carries the
upload's TTL, so an abandoned upload frees its memory by itself. The Redis client must return bytes
(`decode_responses=False`, the default): chunks are binary.

Completing an upload deletes its chunks; aborting one deletes its keys at once.

An owner's open and verified uploads are bounded in number and in the bytes they declare (a quota
checked in the script that begins an upload, so parallel begins cannot overshoot it); completing,
failing, aborting or expiring frees both.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import uuid
from typing import cast

import redis.asyncio

from services.gateway.domain.uploads import (
    UPLOAD_ID,
    UploadError,
    UploadLimits,
    UploadProblem,
    UploadState,
    UploadStatus,
    check_assemblable,
    check_chunk,
    not_found,
)

_ASSEMBLY_LEASE_MS = 60_000
_READ_BATCH = 64

# KEYS meta, open-index, declared bytes. ARGV upload_id, now, expires_at, ttl_ms, max_open, quota,
# total_bytes, then field/value pairs. The open index (upload id → expiry) and the declared bytes (upload
# id → total_bytes) hold the same ids. Returns {'exists'} (the caller compares parameters), {'full'},
# {'over_quota', bytes already declared} or {'created'}.
_BEGIN_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
local open = redis.call('ZRANGE', KEYS[2], 0, -1)
if #open >= tonumber(ARGV[5]) then
  return {'full'}
end
local declared = 0
for _, id in ipairs(open) do
  declared = declared + (tonumber(redis.call('HGET', KEYS[3], id)) or 0)
end
if declared + tonumber(ARGV[7]) > tonumber(ARGV[6]) then
  return {'over_quota', declared}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {'created'}
"""

# KEYS meta, received, chunk. ARGV index, data. Validation of index and size happened against the same
# metadata, which never changes after begin; the script re-checks what can change: existence and status.
_PUT_CHUNK_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'not_found'
end
if status ~= 'open' then
  return status
end
local existing = redis.call('GET', KEYS[3])
if existing then
  if existing == ARGV[2] then
    return 'ok'
  end
  return 'conflict'
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  return 'not_found'
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return 'ok'
"""

# KEYS meta, open-index, declared bytes, lock, chunks... ARGV upload_id, new status, result, lock token.
# Sets the final status, drops the upload from the owner's open set, frees the chunks and the lease.
_SETTLE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'result', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[4] == '' or redis.call('GET', KEYS[4]) == ARGV[4] then
  redis.call('DEL', KEYS[4])
end
for i = 5, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
"""

# KEYS meta, open-index, declared bytes, lock, received, chunks... ARGV upload_id.
# An upload someone is completing (the assembly lease is held) or that has ended stays as it is.
_ABORT_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'not_found'
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 'completing'
end
if status ~= 'open' and status ~= 'verified' then
  return status
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
for i = 5, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 'aborted'
"""

# HSET alone would recreate an expired upload as a hash without a TTL
_MARK_VERIFIED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'verified')
return 1
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class UploadStore:
    def __init__(
        self,
        redis: redis.asyncio.Redis,
        prefix: str = "oms:up",
        ttl_seconds: float = 3600,
        max_total_bytes: int = 64 << 20,
        max_chunk_bytes: int = 4 << 20,
        max_open_per_owner: int = 4,
        max_chunks: int = 4096,
        quota_bytes_per_owner: int = 128 << 20,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_seconds = ttl_seconds
        self._limits = UploadLimits(max_total_bytes, max_chunk_bytes, max_chunks)
        self._max_open = max_open_per_owner
        self._quota = quota_bytes_per_owner
        self._begin = redis.register_script(_BEGIN_LUA)
        self._put_chunk = redis.register_script(_PUT_CHUNK_LUA)
        self._settle = redis.register_script(_SETTLE_LUA)
        self._mark_verified = redis.register_script(_MARK_VERIFIED_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._abort = redis.register_script(_ABORT_LUA)

    async def begin(
        self,
        owner: str,
        target: str,
        total_bytes: int,
        sha256: str,
        chunk_bytes: int,
        now: float,
        upload_id: str | None = None,
    ) -> UploadState:
        sha256 = sha256.lower()
        self._limits.check(target, total_bytes, sha256, chunk_bytes, upload_id)
        upload_id = upload_id or uuid.uuid4().hex
        total_chunks = math.ceil(total_bytes / chunk_bytes)
        expires_at = now + self._ttl_seconds
        fields: dict[str, str | int | bytes] = {
            "owner": owner,
            "target": target,
            "total_bytes": total_bytes,
            "sha256": sha256,
            "chunk_bytes": chunk_bytes,
            "total_chunks": total_chunks,
            "status": UploadStatus.OPEN.value,
            "created_at": repr(now),
            "expires_at": repr(expires_at),
            "result": b"",
        }
        outcome, *declared = await self._begin(
            keys=[self._key(owner, upload_id, "meta"), self._open_index(owner), self._declared(owner)],
            args=[
                upload_id,
                repr(now),
                repr(expires_at),
                self._ttl_ms(),
                self._max_open,
                self._quota,
                total_bytes,
                *itertools.chain.from_iterable(fields.items()),
            ],
        )
        if outcome == b"full":
            raise UploadError(
                "owner", f"too many open uploads (at most {self._max_open})", UploadProblem.RESOURCE_EXHAUSTED
            )
        if outcome == b"over_quota":
            raise UploadError(
                "total_bytes",
                f"{total_bytes} bytes would exceed the quota of {self._quota} bytes for open uploads "
                f"({int(declared[0])} already declared); complete or abort one first",
                UploadProblem.RESOURCE_EXHAUSTED,
            )
        state = await self.status(owner, upload_id)
        asked = (target, total_bytes, sha256, chunk_bytes)
        if (
            outcome == b"exists"
            and (state.target, state.total_bytes, state.sha256, state.chunk_bytes) != asked
        ):
            raise UploadError(
                "upload_id", "already begun with different parameters", UploadProblem.FAILED_PRECONDITION
            )
        return state

    async def put_chunk(self, owner: str, upload_id: str, index: int, data: bytes, now: float) -> UploadState:
        check_chunk(await self.status(owner, upload_id), index, len(data), now)
        outcome = await self._put_chunk(
            keys=[
                self._key(owner, upload_id, "meta"),
                self._key(owner, upload_id, "received"),
                self._chunk_key(owner, upload_id, index),
            ],
            args=[index, data],
        )
        if outcome == b"not_found":
            raise not_found()
        if outcome == b"conflict":
            raise UploadError(
                "data",
                f"chunk {index} was already received with different bytes",
                UploadProblem.FAILED_PRECONDITION,
            )
        if outcome != b"ok":
            raise UploadError(
                "upload_id", f"upload is already {outcome.decode()}", UploadProblem.FAILED_PRECONDITION
            )
        return await self.status(owner, upload_id)

    async def status(self, owner: str, upload_id: str) -> UploadState:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise not_found()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key(owner, upload_id, "meta"))
            pipe.smembers(self._key(owner, upload_id, "received"))
            meta, received = await pipe.execute()
        if not meta or meta[b"owner"].decode() != owner:
            raise not_found()
        return UploadState(
            upload_id=upload_id,
            owner=owner,
            target=meta[b"target"].decode(),
            total_bytes=int(meta[b"total_bytes"]),
            sha256=meta[b"sha256"].decode(),
            chunk_bytes=int(meta[b"chunk_bytes"]),
            total_chunks=int(meta[b"total_chunks"]),
            received=frozenset(int(index) for index in received),
            status=meta[b"status"].decode(),
            created_at=float(meta[b"created_at"]),
            expires_at=float(meta[b"expires_at"]),
            result=meta.get(b"result", b""),
        )

    async def assemble(self, owner: str, upload_id: str) -> bytes:
        """The verified payload, to hand to the target. The caller then reports the target's answer with
        `finish`. Only one caller at a time assembles: it holds a lease until `finish`, so a concurrent
        retry is told the upload is already completing; if the holder dies, the lease lapses and a retry
        may assemble the verified upload again (targets take the upload id as their idempotency key)."""
        check_assemblable(await self.status(owner, upload_id))
        lock = self._key(owner, upload_id, "lock")
        token = uuid.uuid4().hex
        if not await self._redis.set(lock, token, nx=True, px=_ASSEMBLY_LEASE_MS):
            raise UploadError("upload_id", "already completing", UploadProblem.FAILED_PRECONDITION)
        try:
            # again under the lease: a previous holder may have finished (and freed the chunks) meanwhile
            state = await self.status(owner, upload_id)
            check_assemblable(state)
            payload = await self._read_chunks(state)
        except BaseException:
            await self._release(keys=[lock], args=[token])
            raise
        if len(payload) != state.total_bytes or hashlib.sha256(payload).hexdigest() != state.sha256:
            await self._settle_as(state, UploadStatus.FAILED, b"", token)
            raise UploadError("sha256", "checksum mismatch", UploadProblem.FAILED_PRECONDITION)
        if not await self._mark_verified(keys=[self._key(owner, upload_id, "meta")]):
            raise not_found()
        return payload

    async def finish(self, owner: str, upload_id: str, result: bytes) -> UploadState:
        """Records the target's result; a retried finish keeps and returns the first result."""
        state = await self.status(owner, upload_id)
        if state.status == UploadStatus.COMPLETE:
            return state
        if state.status != UploadStatus.VERIFIED:
            raise UploadError(
                "upload_id", f"upload is {state.status}, not verified", UploadProblem.FAILED_PRECONDITION
            )
        if not await self._settle_as(state, UploadStatus.COMPLETE, result, ""):
            raise not_found()
        return await self.status(owner, upload_id)

    async def abort(self, owner: str, upload_id: str) -> None:
        """Deletes an open upload (or a verified one nobody is completing) with its chunks, at once."""
        state = await self.status(owner, upload_id)
        outcome = await self._abort(
            keys=[
                self._key(owner, upload_id, "meta"),
                self._open_index(owner),
                self._declared(owner),
                self._key(owner, upload_id, "lock"),
                self._key(owner, upload_id, "received"),
                *(self._chunk_key(owner, upload_id, i) for i in range(state.total_chunks)),
            ],
            args=[upload_id],
        )
        if outcome == b"not_found":
            raise not_found()
        if outcome == b"completing":
            raise UploadError("upload_id", "is being completed", UploadProblem.FAILED_PRECONDITION)
        if outcome != b"aborted":
            raise UploadError(
                "upload_id", f"upload is already {outcome.decode()}", UploadProblem.FAILED_PRECONDITION
            )

    async def sweep(self, now: float) -> int:
        """Drops expired uploads from the owners' open-upload indexes and declared bytes; Redis TTLs
        remove everything else. An entry is stale once its expiry has passed or its metadata is gone
        (the Redis clock and the one passed in may differ a little). Returns how many were dropped."""
        removed = 0
        async for index_key in self._redis.scan_iter(match=f"{self._prefix}:*:open", count=500):
            entries = cast(
                list[tuple[bytes, float]], await self._redis.zrange(index_key, 0, -1, withscores=True)
            )
            base = index_key.removesuffix(b":open")
            async with self._redis.pipeline(transaction=False) as pipe:
                for upload_id, _ in entries:
                    pipe.exists(base + b":" + upload_id + b":meta")
                alive = await pipe.execute()
            stale = [
                upload_id
                for (upload_id, expires_at), exists in zip(entries, alive, strict=True)
                if expires_at <= now or not exists
            ]
            if stale:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(index_key, *stale)
                    pipe.hdel(base + b":bytes", *stale)
                    dropped, _ = await pipe.execute()
                removed += dropped
        return removed

    async def _read_chunks(self, state: UploadState) -> bytes:
        keys = [self._chunk_key(state.owner, state.upload_id, i) for i in range(state.total_chunks)]
        parts: list[bytes] = []
        # batches bound the size of a single Redis reply
        for start in range(0, len(keys), _READ_BATCH):
            # bytes, not str: the client does not decode responses (see the module docstring)
            chunks = cast(list[bytes | None], await self._redis.mget(keys[start : start + _READ_BATCH]))
            for chunk in chunks:
                if chunk is None:
                    raise not_found()  # expired while assembling
                parts.append(chunk)
        return b"".join(parts)

    async def _settle_as(self, state: UploadState, status: str, result: bytes, token: str) -> bool:
        owner, upload_id = state.owner, state.upload_id
        meta = self._key(owner, upload_id, "meta")
        chunks = [self._chunk_key(owner, upload_id, i) for i in range(state.total_chunks)]
        settled = await self._settle(
            keys=[
                meta,
                self._open_index(owner),
                self._declared(owner),
                self._key(owner, upload_id, "lock"),
                *chunks,
            ],
            args=[upload_id, status, result, token],
        )
        return bool(settled)

    def _ttl_ms(self) -> int:
        return max(1, math.ceil(self._ttl_seconds * 1000))

    def _tag(self, owner: str) -> str:
        # a digest keeps the hash tag free of braces whatever the owner's name holds
        return "{" + hashlib.sha256(owner.encode()).hexdigest()[:16] + "}"

    def _open_index(self, owner: str) -> str:
        return f"{self._prefix}:{self._tag(owner)}:open"

    def _declared(self, owner: str) -> str:
        return f"{self._prefix}:{self._tag(owner)}:bytes"

    def _key(self, owner: str, upload_id: str, part: str) -> str:
        return f"{self._prefix}:{self._tag(owner)}:{upload_id}:{part}"

    def _chunk_key(self, owner: str, upload_id: str, index: int) -> str:
        return self._key(owner, upload_id, f"c:{index}")
