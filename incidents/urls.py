"""Incident pages, mounted at /incidents/ in the ``incidents`` namespace. One POST route per
transition, named after its action, so each has its own access rule."""

from django.urls import path

from incidents import views
from incidents.selectors import ACTIONS

app_name = "incidents"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/suppress/", views.alert_suppress, name="alert_suppress"),
    path("runbooks/", views.runbook_list, name="runbooks"),
    path("runbooks/new/", views.runbook_new, name="runbook_new"),
    path("runbooks/<int:pk>/", views.runbook_detail, name="runbook"),
    path("runbooks/<int:pk>/edit/", views.runbook_edit, name="runbook_edit"),
    path("drills/new/", views.drill, name="drill"),
    path("stats/", views.stats, name="stats"),
    path("<int:number>/", views.detail, name="detail"),
    *[
        path(f"<int:number>/{action}/", views.TRANSITION_VIEWS[action], name=action)
        for action in ACTIONS
    ],
    path("<int:number>/steps/<int:step>/", views.step, name="step"),
    path("<int:number>/impact/", views.impact, name="impact"),
    path("<int:number>/review/", views.review, name="review"),
    path("<int:number>/freeze/", views.freeze, name="freeze"),
    path("<int:number>/unfreeze/", views.unfreeze, name="unfreeze"),
    path("<int:number>/assign/", views.assign, name="assign"),
]
