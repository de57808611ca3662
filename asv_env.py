"""asv plugin (asv.conf.json "plugins"): the `venv` environment type, for `make bench`.

`asv run -E venv:PATH/bin/python` runs the suite in an existing Python, as
`-E existing:` does, but names the environment as asv names its own
virtualenv of that Python version (`virtualenv-py3.11`), not after PATH: the
results of every clone on a machine and those of `asv run` over a commit
range then form one history, and `asv compare` and `asv publish` join them.
"""

from asv import util
from asv.environment import EnvironmentUnavailable, ExistingEnvironment, get_env_name

VERSION = 'import sys; print("%d.%d" % sys.version_info[:2])'


class NamedLikeVirtualenv(ExistingEnvironment):
    """An existing Python whose results are filed under `<environment_type>-py<X.Y>`."""

    tool_name = "venv"
    matches_python_fallback = False  # chosen only by name: -E venv:PATH

    def __init__(self, conf, executable, requirements, tagged_env_vars):
        try:
            self._version = util.check_output([util.which(executable), "-c", VERSION]).strip()
        except (util.ProcessError, OSError) as error:
            raise EnvironmentUnavailable(f"no Python at {executable!r}: {error}") from error
        self._named_as = conf.environment_type
        super().__init__(conf, executable, requirements, tagged_env_vars)

    @property
    def name(self):
        return get_env_name(self._named_as, self._version, {}, self._tagged_env_vars)

    @property
    def python(self):
        return self._version
