"""gunicorn configuration for ixazomib-cds in production.

    gunicorn -c deploy/gunicorn.conf.py            # serves cds_service.wsgi:app on CDS_BIND
    ixazomib-cds serve --host 0.0.0.0 --port 8080   # loads this file too

The values live in cds_service/gunicorn_settings.py (one source of truth, also used when the
package is installed without this directory); this file only applies them, after preparing
PROMETHEUS_MULTIPROC_DIR and JSON logging. Override a setting by assigning it below the
update, e.g. ``timeout = 15``.
"""

from cds_service.gunicorn_settings import bootstrap

globals().update(bootstrap())
