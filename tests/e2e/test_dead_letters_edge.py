"""Every service of the running platform answers for its bus dead letters (omsctl dead-letters), so an
SRE can list and replay them anywhere with one command."""

from __future__ import annotations

from omsctl import dead_letters
from omsctl.stack import Platform


async def test_every_service_answers_for_its_dead_letters_on_the_bus(platform: Platform) -> None:
    answers = await dead_letters.ask(
        platform.infra.nats_url, platform.subject_prefix, dead_letters.SERVICES, {"action": "list"}
    )
    assert [a["service"] for a in answers] == list(dead_letters.SERVICES)
    assert all("error" not in a and isinstance(a["dead_letters"], list) for a in answers), answers
    [refused] = await dead_letters.ask(
        platform.infra.nats_url, platform.subject_prefix, ["orders"], {"action": "replay", "ids": "all"}
    )
    assert "ids" in refused["error"], refused
