"""lossarena.pipeline: the top layer — the ``lossarena`` command and the end-to-end demo.

It sits above every other layer (data → metrics → {codecs | analysis} → study_app → benchmark →
pipeline) and is the only package allowed to import all of them.
"""
