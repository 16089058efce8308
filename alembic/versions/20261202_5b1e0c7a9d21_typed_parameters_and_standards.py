"""typed parameters and standards: nest sales filters, spell out each standard checked

The typed API (issue 12) moved the sales filters of a ratio study and of a market analysis
under `sales`, and stores each IAAO standard a ratio study or valuation holdout checked as a
list of {standard, statistic, value, lower, upper, passes} instead of a map to booleans. Rows
written before keep their meaning: their filters are nested, and their verdicts spelled out
with the ranges the job used (the same `cod_range` of its COD standard or property class).

Revision ID: 5b1e0c7a9d21
Revises: 5a1f0c7e9d2b
Create Date: 2026-12-02 03:40:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from alembic import op
from jobs.stats.ratio import LEVEL_RANGE, PRB_RANGE, PRD_RANGE, cod_range

revision: str = "5b1e0c7a9d21"
down_revision: str | None = "5a1f0c7e9d2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SALES_KEYS = ("sale_date_from", "sale_date_to", "property_class", "arms_length_only")
STANDARD_OF = {
    "level": ("level", "median_ratio"),
    "cod": ("uniformity", "cod"),
    "prd": ("vertical_equity", "prd"),
    "prb": ("vertical_equity", "prb"),
}
KEY_OF = {statistic: key for key, (_, statistic) in STANDARD_OF.items()}


def _nest_sales(table: str, where: str) -> None:
    pairs = ", ".join(f"'{k}', parameters_json->'{k}'" for k in SALES_KEYS[:-1])
    removed = " - ".join(f"'{k}'" for k in SALES_KEYS)
    op.execute(
        f"""UPDATE {table} SET parameters_json = (parameters_json - {removed})
              || jsonb_build_object('sales', jsonb_build_object({pairs},
                   'zip_codes', NULL, 'neighborhoods', NULL,
                   'arms_length_only', coalesce(parameters_json->'arms_length_only', 'true')))
            WHERE {where} AND NOT parameters_json ? 'sales'"""
    )


def _flatten_sales(table: str, where: str) -> None:
    pairs = ", ".join(f"'{k}', parameters_json->'sales'->'{k}'" for k in SALES_KEYS)
    op.execute(
        f"""UPDATE {table} SET parameters_json = (parameters_json - 'sales')
              || jsonb_build_object({pairs})
            WHERE {where} AND parameters_json ? 'sales'"""
    )


def _checks(stats: dict[str, Any], hint: str | None) -> list[dict[str, Any]]:
    bounds = {"level": LEVEL_RANGE, "cod": cod_range(hint), "prd": PRD_RANGE, "prb": PRB_RANGE}
    checks = []
    for key, passes in stats["standards"].items():
        standard, statistic = STANDARD_OF[key]
        lower, upper = bounds[key]
        checks.append(
            {
                "standard": standard,
                "statistic": statistic,
                "value": stats.get(statistic),
                "lower": lower,
                "upper": upper,
                "passes": passes,
            }
        )
    return checks


def _verdicts(stats: dict[str, Any]) -> dict[str, bool]:
    return {KEY_OF[c["statistic"]]: c["passes"] for c in stats["standards"]}


def _rewrite_standards(upgrade: bool) -> None:
    conn = op.get_bind()
    legacy = dict if upgrade else list
    queries = {
        "report_jobs": "SELECT report_id, parameters_json, result_json FROM report_jobs "
        "WHERE result_json ? 'ratio_study'",
        "valuation_jobs": "SELECT job_id, parameters_json, result_json FROM valuation_jobs "
        "WHERE result_json ? 'holdout'",
    }
    for table, query in queries.items():
        key = "report_id" if table == "report_jobs" else "job_id"
        for job_id, parameters, result in conn.execute(sa.text(query)).all():
            if table == "report_jobs":
                study = result["ratio_study"]
                samples = [study["overall"], *study["groups"]]
                sales = parameters.get("sales") or parameters
                hint = parameters.get("cod_standard") or sales.get("property_class")
            else:
                samples = [result["holdout"]] if result["holdout"] else []
                hint = None
            changed = False
            for stats in samples:
                if isinstance(stats.get("standards"), legacy):
                    stats["standards"] = _checks(stats, hint) if upgrade else _verdicts(stats)
                    changed = True
            if changed:
                conn.execute(
                    sa.text(f"UPDATE {table} SET result_json = :r WHERE {key} = :id").bindparams(
                        sa.bindparam("r", type_=sa.dialects.postgresql.JSONB)
                    ),
                    {"r": result, "id": job_id},
                )


def upgrade() -> None:
    _nest_sales("report_jobs", "report_type = 'sales_ratio_study'")
    _nest_sales("market_analysis_jobs", "TRUE")
    _rewrite_standards(upgrade=True)


def downgrade() -> None:
    _rewrite_standards(upgrade=False)
    _flatten_sales("report_jobs", "report_type = 'sales_ratio_study'")
    _flatten_sales("market_analysis_jobs", "TRUE")
