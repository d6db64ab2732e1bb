"""The HTTP API (``fer serve``): a FastAPI app (:mod:`.app`) with typed bodies (:mod:`.schemas`) on an
engine (:mod:`.engines` in this process, :mod:`.ray_engine` on Ray Serve) that runs the analysis steps of
:mod:`.analysis`. Imported only by the ``serve`` command and the tests: nothing else needs FastAPI."""
