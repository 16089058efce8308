"""GIS support for exports: area-of-interest parsing (`area`) and streaming file writers
(`writers`). Everything here is WGS 84 longitude/latitude (EPSG:4326), the datum the parcel
geometries are stored in, so nothing is ever reprojected.
"""
