"""The monthly report (月通报) from the command line."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import fail, servers


def report(month: Annotated[str, typer.Option(help="YYYY-MM (center time)")],
           out: Annotated[Path | None, typer.Option(help="Where to write (default quanzu-YYYY-MM.xlsx)")] = None) -> None:
    """Write the monthly report (月通报) as an .xlsx workbook, the same file GET /reports/monthly gives."""
    import asyncio
    import re

    from sqlalchemy.ext.asyncio import AsyncSession

    from dispatch.outcomes import report as monthly
    from service.core import clock
    from service.core.db import make_async_engine

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise fail("--month must be YYYY-MM")
    urls = servers()

    async def build() -> bytes:
        engine = make_async_engine(urls.database_url, 2)
        try:
            async with AsyncSession(engine) as session:
                return monthly.to_xlsx(await monthly.build_monthly(session, month, clock.now()))
        finally:
            await engine.dispose()

    target = out or Path(f"quanzu-{month}.xlsx")
    target.write_bytes(asyncio.run(build()))
    urls.stop()
    print(target)
