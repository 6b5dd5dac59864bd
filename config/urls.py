from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("jobs.urls")),
    path("staff/reports/", include("shop.report_urls")),
    path("staff/images/", include("media_jobs.urls")),
    path("newsletter/", include("notifications.subscription_urls")),
    path("staff/newsletters/", include("notifications.staff_urls")),
    path("staff/suppliers/", include("suppliers.urls")),
    path("", include("shop.urls")),
]

if "demo" in settings.INSTALLED_APPS:
    # The demo's pages (/mailbox/, /staff/demo/, the supplier site's knobs) where it is installed.
    urlpatterns.insert(0, path("", include("demo.urls")))

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
