"""The ordering argument of `Query.jobs`."""

from __future__ import annotations

import strawberry

from jobs.listing import JobOrder, JobOrderField, OrderDirection

strawberry.enum(JobOrderField, name="JobOrderField", description="What `jobs` sorts by.")
strawberry.enum(OrderDirection, name="OrderDirection")


@strawberry.input(name="JobOrder", description="The order of `jobs`; ties are broken by id.")
class JobOrderInput:
    field: JobOrderField = strawberry.field(
        default=JobOrderField.CREATED,
        description="CREATED: when submitted; UPDATED: last change (a job that changes while "
        "you page may move past your cursor: watch changes with jobsUpdated instead)",
    )
    direction: OrderDirection = OrderDirection.DESC

    def to_order(self) -> JobOrder:
        return JobOrder(self.field, self.direction)
