"""Empathy Camp: the library behind the notebooks.

Modules, one concern each: `utils` (device, seeding, caching), `doctor` (setup check), `course` (the
solutions -> lessons pipeline), `runner` (execute notebooks, HTML report), `cli` (`python -m camp`).
"""

__version__ = "0.1.0"
