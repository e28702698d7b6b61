"""Issue 15, class 2, as the dashboard and the CLI show it: an action refused because a key
holds another type is an error flash (or a ``corrupt:`` line) naming the key, never a 503 page,
and the job is where it was (tests/integration/test_actions_all_or_nothing.py covers every
script and key)."""

from __future__ import annotations

from click.testing import CliRunner

from jobbridge.cli import main
from jobbridge.dev.autumn_emulator import Autumn
from tests.web import seed
from tests.web.conftest import csrf_token

AUDIT = "jobbridge:audit"


async def test_page_action_on_a_wrong_typed_key_is_an_error_flash(
    client, autumn_emulator: Autumn
) -> None:
    waiting = seed.enqueue(autumn_emulator)
    autumn_emulator.client.set(AUDIT, "x")
    token = await csrf_token(client, "/admin/jobs/orders")
    response = await client.post(
        f"/admin/jobs/orders/{waiting}/cancel",
        data={"_csrf": token, "next": "/admin/jobs/orders"},
        allow_redirects=False,
    )
    assert response.status == 303
    html = await (await client.get("/admin/jobs/orders")).text()
    assert (
        '<div class="flash flash-error" role="status">The cancel of job '
        f"{waiting} was refused: key {AUDIT} is a string, expected a list; nothing was "
        "changed.</div>"
    ) in html, html
    assert autumn_emulator.queue_ids() == [waiting] and autumn_emulator.record(waiting) is not None
    assert autumn_emulator.client.get(AUDIT) == b"x"


def test_cli_action_on_a_wrong_typed_key_says_corrupt(
    autumn_emulator: Autumn, redis_url: str
) -> None:
    waiting = autumn_emulator.enqueue("noop", {})
    assert waiting is not None
    autumn_emulator.client.delete(autumn_emulator.queue_key("default"))
    autumn_emulator.client.set(autumn_emulator.queue_key("default"), "x")
    result = CliRunner().invoke(main, ["cancel", "--redis", redis_url, waiting])
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        f"corrupt: The cancel of job {waiting} was refused: key "
        f"{autumn_emulator.queue_key('default')} is a string, expected a list; "
        "nothing was changed.\n"
    )
    assert autumn_emulator.record(waiting) is not None
