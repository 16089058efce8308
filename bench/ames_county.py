"""Turn the Ames, Iowa housing data (De Cock 2011) into a county our import takes.

    apt-get install r-cran-modeldata          # Debian's package of CRAN modeldata (MIT)
    Rscript -e 'data(ames, package="modeldata"); write.csv(ames, "ames.csv", row.names=FALSE)'
    python bench/ames_county.py ames.csv out/  # writes out/parcels.csv and out/sales.csv
    terrafusion import parcels out/parcels.csv --county AMES
    terrafusion import sales out/sales.csv --county AMES

Why: the valuation models need a real county with the characteristics a CAMA system keeps
(garage, basement, fireplaces, central air, condition, stories, remodel year) to be judged
on, and the Ames data are 2,930 real sales of 2006-2010 with exactly those, plus each
house's longitude/latitude (modeldata geocoded them), so the location terms work as on any
county. It is run by hand, never by the app or the tests: the data set is not ours to ship.

What each column comes from (modeldata's names; BENCHMARKS.md records the results):

* ``parcel_id``: ``AMES-0001`` … in the data's row order (modeldata drops the assessor's PID).
* ``neighborhood``, ``property_class`` (``Bldg_Type``), ``year_built``, ``living_area_sqft``
  (``Gr_Liv_Area``), ``lot_size_sqft`` (``Lot_Area``), ``bedrooms`` (``Bedroom_AbvGr``),
  ``bathrooms`` (``Full_Bath`` + ½ ``Half_Bath``, above grade), ``lon``/``lat``.
* ``garage_spaces`` (``Garage_Cars``), ``basement_sqft`` (``Total_Bsmt_SF``),
  ``fireplaces``, ``central_air`` (Y → 1), ``condition`` (``Overall_Cond``, Very_Poor = 1 …
  Very_Excellent = 10), ``stories`` (from ``House_Style``: 1, 1.5, 2, 2.5; a split foyer 1,
  a split level 1.5), ``remodel_year`` (``Year_Remod_Add``). ``quality`` stays empty:
  modeldata leaves ``Overall_Qual`` out.
* A sale's date is the 15th of ``Mo_Sold``/``Year_Sold`` (the data give only the month);
  ``arms_length`` is true for ``Sale_Condition`` Normal and Partial (a new house sold while
  being built), false for Abnorml (foreclosure, short sale, trade), Family, Alloca and
  AdjLand, as De Cock advises for a model of ordinary sales.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

CONDITION = {
    name: grade
    for grade, name in enumerate(
        (
            "Very_Poor",
            "Poor",
            "Fair",
            "Below_Average",
            "Average",
            "Above_Average",
            "Good",
            "Very_Good",
            "Excellent",
            "Very_Excellent",
        ),
        start=1,
    )
}
STORIES = {
    "One_Story": 1.0,
    "One_and_Half_Fin": 1.5,
    "One_and_Half_Unf": 1.5,
    "Two_Story": 2.0,
    "Two_and_Half_Fin": 2.5,
    "Two_and_Half_Unf": 2.5,
    "SFoyer": 1.0,
    "SLvl": 1.5,
}
ARMS_LENGTH = frozenset({"Normal", "Partial"})
PARCEL_COLUMNS = (
    "parcel_id",
    "neighborhood",
    "property_class",
    "year_built",
    "living_area_sqft",
    "lot_size_sqft",
    "bedrooms",
    "bathrooms",
    "garage_spaces",
    "basement_sqft",
    "fireplaces",
    "central_air",
    "condition",
    "stories",
    "remodel_year",
    "lon",
    "lat",
)
SALE_COLUMNS = ("parcel_id", "sale_date", "sale_price", "arms_length")


def convert(rows: list[dict[str, str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Parcel rows and sale rows, as the import's CSV cells."""
    parcels: list[list[str]] = []
    sales: list[list[str]] = []
    for number, row in enumerate(rows, start=1):
        parcel_id = f"AMES-{number:04d}"
        baths = float(row["Full_Bath"]) + 0.5 * float(row["Half_Bath"])
        parcels.append(
            [
                parcel_id,
                row["Neighborhood"],
                row["Bldg_Type"],
                row["Year_Built"],
                row["Gr_Liv_Area"],
                row["Lot_Area"],
                row["Bedroom_AbvGr"],
                f"{baths:g}",
                row["Garage_Cars"],
                row["Total_Bsmt_SF"],
                row["Fireplaces"],
                "1" if row["Central_Air"] == "Y" else "0",
                str(CONDITION[row["Overall_Cond"]]),
                f"{STORIES[row['House_Style']]:g}",
                row["Year_Remod_Add"],
                row["Longitude"],
                row["Latitude"],
            ]
        )
        sales.append(
            [
                parcel_id,
                f"{int(row['Year_Sold']):04d}-{int(row['Mo_Sold']):02d}-15",
                row["Sale_Price"],
                "true" if row["Sale_Condition"] in ARMS_LENGTH else "false",
            ]
        )
    return parcels, sales


def _write(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ames_csv", type=Path, help="modeldata's ames written by write.csv")
    parser.add_argument("out_dir", type=Path, help="where parcels.csv and sales.csv go")
    args = parser.parse_args(argv)
    with args.ames_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    parcels, sales = convert(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    _write(args.out_dir / "parcels.csv", PARCEL_COLUMNS, parcels)
    _write(args.out_dir / "sales.csv", SALE_COLUMNS, sales)
    sys.stderr.write(f"{len(parcels)} parcels and {len(sales)} sales in {args.out_dir}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
