"""What the stages share that is not a stage: the Makefile's knobs, quiet output, publishing.

    python -m pipeline.knobs settings --out build       # every knob in effect, and where it comes from

``pipeline.knobs`` resolves make's knobs (ALPHA=0.35, MAX_DROP=0.5, ...) into each
stage's configuration, so make compares settings by meaning and reuses the ones a
build was made with; ``pipeline.quiet`` keeps library banners out of normal runs;
``pipeline.publish`` holds OUT's lock and publishes a stage's files as one set.
None imports TensorFlow.
"""
