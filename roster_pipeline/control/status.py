"""The district status table (markdown) shown on the ``district_status`` asset in the Dagster UI."""

from __future__ import annotations

from roster_pipeline.control.state import DistrictState
from roster_pipeline.districts import Registry


def _cell(text: object, limit: int = 160) -> str:
    value = " ".join(str(text).split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 3] + "..."


def status_markdown(registry: Registry, states: dict[str, DistrictState], held: dict[str, int | None]) -> str:
    lines = [
        "| district | enabled | state | since | by | held import | reason | pending |",
        "| --- | --- | --- | --- | --- | ---: | --- | --- |",
    ]
    for district in registry.districts.values():
        state = states.get(district.id, DistrictState.running(district.id))
        since = state.paused_at.strftime("%Y-%m-%d %H:%M UTC") if state.paused and state.paused_at else ""
        lines.append(
            f"| {district.id} | {'yes' if district.enabled else 'no'} | {'PAUSED' if state.paused else 'running'} | "
            f"{since} | {_cell(state.paused_by or '') if state.paused else ''} | {held.get(district.id) or ''} | "
            f"{_cell(state.reason or '') if state.paused else ''} | {state.pending_action or ''} |"
        )
    return "\n".join(lines)
