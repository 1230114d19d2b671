"""Django error reports must not show provider secrets or encryption keys."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|ENCRYPTION", flags=re.I)
    sensitive_names = re.compile(r"secret|key|password|token|signature|encrypted", flags=re.I)

    def get_traceback_frame_variables(self, request, tb_frame):
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            cleansed.append((name, self.cleansed_substitute if self.sensitive_names.search(name) else value))
        return cleansed
