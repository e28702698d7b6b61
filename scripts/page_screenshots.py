"""Screenshots of the demo's pages, for a before/after comparison of the page work.

Starts ``jobbridge demo`` (whatever ``jobbridge`` the interpreter imports: set PYTHONPATH to
a checkout to shoot that checkout's pages) on a free port, waits for data, and saves the
overview, the RQ source page (``reports``) and the Celery source page (``emails``) at desktop
(1280 wide) and phone (390 wide) width, each the full page cut at ``MAX_HEIGHT`` pixels:

    python scripts/page_screenshots.py --out DIR [--wait 30]

writes ``DIR/{overview,rq,celery}-{desktop,phone}.png``. Needs Playwright's Python package
and Debian's ``chromium`` (scripts/install-chromium), as the browser tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.async_api import FloatRect, async_playwright

#: the pages shot: file name stem -> path under the dashboard's prefix
PAGES = {"overview": "/jobs", "rq": "/jobs/reports", "celery": "/jobs/emails"}
#: widths: name -> (width, height of the window)
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
#: tallest screenshot kept, px (the rest of a long page is cut)
MAX_HEIGHT = 5000
#: seconds the demo's URL may take to answer
START_S = 90
#: seconds the demo gets to stop after Ctrl-C
STOP_S = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the demo exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                message = f"the demo did not answer in {START_S} s:\n{log.read_text()}"
                raise SystemExit(message) from None
            time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C (the demo stops its workers and its Redis), then a kill of its group."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def shoot(base: str, out: Path) -> list[Path]:
    saved: list[Path] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for width_name, (width, height) in WIDTHS.items():
                context = await browser.new_context(
                    viewport={"width": width, "height": height},
                    device_scale_factor=1,
                    is_mobile=width_name == "phone",
                    has_touch=width_name == "phone",
                )
                page = await context.new_page()
                for page_name, path in PAGES.items():
                    await page.goto(base + path, wait_until="networkidle")
                    # one refresh of the counters and lists, and the charts drawn
                    await page.wait_for_timeout(2500)
                    full = await page.evaluate("document.documentElement.scrollHeight")
                    tall = min(int(full), MAX_HEIGHT)
                    clip: FloatRect = {"x": 0, "y": 0, "width": width, "height": tall}
                    target = out / f"{page_name}-{width_name}.png"
                    await page.screenshot(path=str(target), full_page=True, clip=clip)
                    saved.append(target)
                    print(f"{target} ({width}x{tall}, page {full} px tall)")
                await context.close()
        finally:
            await browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds of demo data first")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        raise SystemExit("chromium not found: run scripts/install-chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jobbridge-shots-") as tmp:
        log = Path(tmp) / "demo.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")}
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "jobbridge", "demo", "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            base = f"http://127.0.0.1:{port}/admin"
            wait_up(base + "/jobs", process, log)
            time.sleep(args.wait)
            asyncio.run(shoot(base, args.out))
        finally:
            stop(process)


if __name__ == "__main__":
    main()
