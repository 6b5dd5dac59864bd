"""The kinds of job this app runs, with the words the staff pages use for them."""

from jobs.kinds import JobKind

# A fresh upload: staff are waiting to see it on the shop.
MAKE_RENDITIONS = JobKind("renditions", "Renditions", doing="making", done="ready")
# Part of a bulk regeneration: one job per picture and batch, see services.regenerate_all.
REGENERATE_RENDITIONS = JobKind(
    "regenerate_renditions", "Regeneration", doing="regenerating", done="regenerated"
)


def regeneration_key(image_id, batch):
    """A picture can be regenerated again in every batch, but only once per batch."""
    return REGENERATE_RENDITIONS.key(f"{image_id}:{batch}")


# A fresh video upload: its poster frame and preview, made with ffmpeg.
POSTER_AND_PREVIEW = JobKind("video", "Poster and preview", doing="making", done="ready")
