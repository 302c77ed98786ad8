from __future__ import annotations

import pytest

from omsctl.embedded import DEFAULT_REDIS_MAXMEMORY, redis_memory


def test_a_memory_limit_is_a_size_redis_reads_and_never_zero_which_is_no_limit() -> None:
    assert redis_memory(DEFAULT_REDIS_MAXMEMORY) == "256mb"
    assert redis_memory(" 1GB ") == "1gb"
    assert redis_memory("1048576") == "1048576"
    for bad in ("0", "0mb", "512kb", "lots", "256 mb", "-1gb", ""):
        with pytest.raises(ValueError, match="REDIS_MAXMEMORY"):
            redis_memory(bad)
