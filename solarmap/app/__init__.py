"""The front door: the command line and the demo, which compose the stages.

Everything below ``solarmap.app`` is the core (bands, geo, windows, model, predict...) or a
stage package (``data_prep``, ``train``, ``attribute``); only this subpackage imports them all.
"""
