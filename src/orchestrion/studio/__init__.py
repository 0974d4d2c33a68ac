"""`orchestrion studio`: a local web app to play with the Musika and SymphonyNet models.

The logic lives in plain modules that take a request and return files and messages
(:mod:`.limits`, :mod:`.uploads`, :mod:`.models`, :mod:`.streaming`, :mod:`.jobs`); :mod:`.app`
only lays them out as a gradio page, and :mod:`.cli` starts it.
"""
