"""4. Thumbnails: TODO, the media jobs are being landed by another developer right now.

When they are in, this module gets the shape of the others: renditions of the same pictures
made in the request (baseline) and on the `media` worker (ours), alternating, with the
worker's images/s and the upload's latency as the figures.
"""

from bench.harness import todo

NAME = "thumbnails"


def run(env):
    return todo(NAME, "TODO: media jobs (media_jobs/) are landing now; benchmark to be added")
