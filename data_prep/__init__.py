"""From raw inputs (Sentinel-2 scenes, OSM labels) to labelled scenes and chips."""
