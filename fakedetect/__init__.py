"""fakedetect: the library behind the stages of the fake-image detection pipeline.

One module per concern: params (the schema), layouts (dataset folders -> manifest),
images (safe decoding), demo (the offline demo set), augment (preprocessing
protocols), atomic (crash-safe writes), plots, stage (what every stage script shares).
"""
