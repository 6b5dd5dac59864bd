app_name = "media_jobs"
urlpatterns = []
