"""Scalars of our own: values with a structure GraphQL's type system cannot spell."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

from jobs.kinds.gis_export.area import AreaOfInterestError, require_polygonal


def _parse_geojson(value: Any) -> dict[str, Any]:
    try:
        return dict(require_polygonal(value, "GeoJSON"))
    except AreaOfInterestError as exc:
        # A GraphQLError (not ValueError) so the client gets graphql-core's message with the
        # input path in front of ours, as BAD_USER_INPUT.
        raise GraphQLError(str(exc)) from None


GeoJSON = NewType("GeoJSON", dict)

SCALARS: dict[object, ScalarDefinition] = {
    GeoJSON: strawberry.scalar(
        name="GeoJSON",
        description="A GeoJSON Polygon or MultiPolygon geometry object (RFC 7946 sections "
        '3.1.6-3.1.7), e.g. {"type": "Polygon", "coordinates": [[[lon, lat], ...]]}; '
        "longitudes and latitudes in WGS84, rings closed.",
        specified_by_url="https://www.rfc-editor.org/rfc/rfc7946#section-3.1.6",
        serialize=lambda value: value,
        parse_value=_parse_geojson,
    )
}
"""Our scalars for the schema's `scalar_map`."""
