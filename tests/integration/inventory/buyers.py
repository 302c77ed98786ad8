"""A buyer process for the oversell race: N concurrent reservations of one unit, each on its own
connection; prints how many succeeded."""

from __future__ import annotations

import asyncio
import sys

from services.inventory import bootstrap, handlers
from services.inventory.domain.model import Line
from services.kit.db import make_engine


async def main(url: str, name: str, buyers: int, sku: str, warehouse: str) -> None:
    engine = make_engine(url, pool_size=buyers)
    policy = handlers.Policy()

    async def buy(n: int) -> bool:
        outcome = await handlers.reserve(
            bootstrap.units_of_work(engine), policy, f"{name}-{n}", [Line(sku, warehouse, 1)]
        )
        return outcome.reserved

    results = await asyncio.gather(*(buy(n) for n in range(buyers)))
    await engine.dispose()
    print(sum(results))


if __name__ == "__main__":
    url, name, buyers, sku, warehouse = sys.argv[1:6]
    asyncio.run(main(url, name, int(buyers), sku, warehouse))
