"""`codeduel cost`: when does local hardware pay for itself against a cloud model?"""

from __future__ import annotations

from codeduel.costs import Usage, break_even, call_cost
from codeduel.errors import OptionError
from codeduel.report import CostSettings, ReportRow, build_rows
from codeduel.store import Run, Store

__all__ = ["explain_break_even"]


def _pick_local(rows: list[ReportRow], model: str | None) -> ReportRow:
    for row in rows:
        if row.local and (model is None or row.model == model):
            return row
    wanted = f"local model {model!r}" if model else "local model"
    raise OptionError(f"run has no {wanted}; its models: {', '.join(r.model for r in rows)}")


def explain_break_even(
    store: Store,
    run: Run,
    costs: CostSettings,
    local_model: str | None,
    cloud_model: str,
    problems_per_month: float,
    batch: bool = False,
) -> str:
    """The break-even text. `batch`: a cloud model not in the run is priced at its batch rates
    (a measured one is priced as its calls were billed)."""
    rows = build_rows(store, run, costs)
    local = _pick_local(rows, local_model)
    if local.usd_per_problem is None:
        raise OptionError(f"{local.model} has no scored samples in run {run.name!r}")
    measured = next(
        (
            r
            for r in rows
            if r.model == cloud_model
            and r.strategy == local.strategy
            and r.usd_per_problem is not None
        ),
        None,
    )
    if measured is not None:
        cloud_usd = measured.usd_per_problem
        basis = f"measured in this run ({measured.samples} samples, {measured.cost_basis})"
    else:
        price = costs.prices.get(cloud_model)
        if price is None:
            raise OptionError(f"no price for {cloud_model}; pass a price table with --prices")
        usage = Usage(
            round(local.prompt_tokens_mean), round(local.completion_tokens_mean), batch=batch
        )
        cloud_usd = call_cost(price, usage)
        basis = (
            f"{cloud_model} was not in this run: its listed prices "
            f"(${price.input_per_mtok:g}/${price.output_per_mtok:g} per Mtok, read "
            f"{price.read_on}) applied to the tokens {local.model} used per problem "
            f"({local.prompt_tokens_mean:.0f} in, {local.completion_tokens_mean:.0f} out)"
        )
        if batch:
            basis += f", at batch rates ({100 * price.batch_discount:g}% off)"
    assert cloud_usd is not None
    be = break_even(cloud_usd, local.usd_per_problem, costs.local, problems_per_month)
    engine = local.engine_s_per_problem or 0.0
    lines = [
        f"Run {run.name} ({run.benchmark}): {local.model} vs {cloud_model}",
        f"  cloud, per problem:  ${cloud_usd:.5f}   [{basis}]",
        f"  local, per problem:  ${local.usd_per_problem:.5f}   [{local.cost_basis}; "
        f"{engine:.2f} s of engine time per problem measured]",
        f"  local hardware:      ${costs.local.hardware_usd:,.0f} over "
        f"{costs.local.lifetime_months:g} months = ${costs.local.hardware_usd_per_month:,.2f}"
        " per month",
    ]
    if be.problems_per_month == float("inf"):
        lines.append(
            "  break-even:          never — each local problem costs more than the cloud one"
        )
    else:
        lines.append(
            f"  break-even:          {be.problems_per_month:,.0f} problems per month; "
            "above that the local machine is cheaper"
        )
        if be.months_to_pay_off is not None:
            lines.append(
                f"  pay-off:             at {problems_per_month:,.0f} problems per month"
                f" the hardware has paid for itself after {be.months_to_pay_off:.1f} "
                "months"
            )
    if local.pass_at_1 is not None:
        acc = f"{100 * local.pass_at_1.value:.1f}%"
        cloud_acc = (
            f"{100 * measured.pass_at_1.value:.1f}%"
            if measured is not None and measured.pass_at_1 is not None
            else "not measured"
        )
        lines.append(
            f"  accuracy (pass@1):   local {acc}, cloud {cloud_acc} — a cheaper wrong "
            "answer is not a saving; compare $ per solved problem in codeduel report"
        )
    return "\n".join(lines)
