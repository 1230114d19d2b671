"""Django error reports must not show provider secrets, encryption keys or the password inside any URL or DSN."""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host -> the password masked, wherever such a string appears: a *_URL or DSN setting, a
# nested one (CACHES' LOCATION), the request's META (runserver copies the process environment into it: DATABASE_URL),
# a local variable of a failing frame.
URL_PASSWORD = re.compile(r"(?P<start>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)", flags=re.I)


def mask_url_passwords(text: str) -> str:
    return URL_PASSWORD.sub(lambda match: match.group("start") + "********", text)


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|ENCRYPTION", flags=re.I)
    sensitive_names = re.compile(r"secret|key|password|token|signature|encrypted", flags=re.I)

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        return mask_url_passwords(cleansed) if type(cleansed) is str else cleansed  # not lazy objects (the CSRF token)

    def get_traceback_frame_variables(self, request, tb_frame):
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if self.sensitive_names.search(name):
                value = self.cleansed_substitute
            elif type(value) is str:
                value = mask_url_passwords(value)
            cleansed.append((name, value))
        return cleansed
