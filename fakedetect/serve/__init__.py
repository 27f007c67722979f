"""`fakedetect serve`: a local web page and HTTP API that score dropped images with a trained run
and show what each verdict rests on (docs/serve.md "What the page shows")."""
