"""What staff may upload as a product picture, checked before anything is stored."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from media_jobs import services
from media_jobs.models import ProductImage

# Lets the browser's file picker offer pictures only; the server checks regardless.
ACCEPT = "image/jpeg,image/png,image/webp,image/gif"


def validate_picture(uploaded_file):
    """Raise a ValidationError, in words for staff, if `uploaded_file` cannot be a picture.

    Everything its header shows is checked here (format, bytes, pixels, shape, frames); a file
    damaged further in is only found out when the worker decodes it, and its job fails.
    """
    try:
        services.check_upload(uploaded_file)
    except services.ImageRejected as exc:
        raise ValidationError(f"{capfirst(str(exc))}.", code="rejected") from exc
    return uploaded_file


class PictureUploadForm(forms.Form):
    image = forms.FileField(
        label="New picture",
        widget=forms.FileInput(attrs={"accept": ACCEPT}),
        error_messages={"required": "Choose a picture to upload."},
    )

    def clean_image(self):
        return validate_picture(self.cleaned_data["image"])


class ProductImageUploadForm(forms.ModelForm):
    """The admin's inline: one file field, checked like the staff page's form."""

    class Meta:
        model = ProductImage
        fields = ["original"]
        labels = {"original": "Upload a picture"}
        widgets = {"original": forms.FileInput(attrs={"accept": ACCEPT})}

    def clean_original(self):
        return validate_picture(self.cleaned_data["original"])


# The browser's file picker offers videos only; the server checks the content regardless.
VIDEO_ACCEPT = "video/mp4,video/quicktime,video/webm,video/x-matroska,.mp4,.m4v,.mov,.webm,.mkv"


def validate_video(uploaded_file):
    """Raise a ValidationError, in words for staff, if `uploaded_file` cannot be a product video.

    Its size, its first bytes and its header (ffprobe) are checked here, before anything is
    stored or any job asked for; a file damaged further in is only found out by the worker.
    """
    try:
        services.check_video_upload(uploaded_file)
    except services.VIDEO_REFUSALS as exc:
        raise ValidationError(f"{capfirst(str(exc))}.", code="rejected") from exc
    return uploaded_file


class VideoUploadForm(forms.Form):
    video = forms.FileField(
        label="New video",
        widget=forms.FileInput(attrs={"accept": VIDEO_ACCEPT}),
        error_messages={"required": "Choose a video to upload."},
    )

    def clean_video(self):
        return validate_video(self.cleaned_data["video"])
