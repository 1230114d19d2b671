"""The API's default permission: the admin's rule (staff, and the model's permission), reads included."""

from rest_framework.permissions import DjangoModelPermissions


class StaffWithModelPermissions(DjangoModelPermissions):
    """Staff AND the model permission of what the request does: `view_*` to read (DRF's own class lets any
    authenticated user read), `add_*`/`change_*`/`delete_*` to write, as the admin refuses the same lists otherwise."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_staff) and super().has_permission(request, view)
