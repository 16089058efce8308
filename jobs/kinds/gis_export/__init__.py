"""GisExportJob: the parcels of an area as a GIS file.

`params` and `table` declare its input and row, `spec` validates and dispatches, `area` parses
the area of interest, `export` streams the rows into a `writers` format. Everything here is
WGS 84 longitude/latitude (EPSG:4326), the datum the parcel geometries are stored in, so
nothing is ever reprojected.
"""
