"""A hostile MCP caller for suite::mcp: eight calls to a tool that never answers, at once,
through the async Python SDK; then one ordinary call. Prints one line per outcome."""

import asyncio

import agentos


async def main() -> None:
    c = await agentos.AsyncClient.connect()

    async def one(i: int) -> str:
        try:
            await c.call_tool("fake", "sleep", {"i": i})
            return "ok"
        except agentos.AgentOSError as e:
            return type(e).__name__

    kinds = await asyncio.gather(*(one(i) for i in range(8)))
    print("flood: " + ",".join(sorted(kinds)), flush=True)
    out = await c.call_tool("fake", "echo", {"message": "after the flood"})
    print("after: " + out["content"][0]["text"], flush=True)
    await c.close()


asyncio.run(main())
