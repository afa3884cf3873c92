# The image every Airflow service of docker-compose.yaml runs: the official slim Airflow
# image with the project's pinned dependencies, the `ml` package, the DAGs, the plugin,
# the dbt project and the expectation suites.
ARG AIRFLOW_IMAGE=apache/airflow:slim-3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# Folders the containers write: the data volume, the admin password file, and the project
# (its editable install writes metadata beside it). Owned by the airflow user and group 0,
# group-writable, so any AIRFLOW_UID the containers run as (always with group 0) can write.
# A new named volume takes the ownership of the folder it is mounted on.
USER root
RUN mkdir -p /opt/airflow/data /opt/airflow/auth /opt/ml-project \
    && chown -R airflow:0 /opt/airflow/data /opt/airflow/auth /opt/ml-project \
    && chmod -R g+rwX /opt/airflow/data /opt/airflow/auth /opt/ml-project
USER airflow

# requirements.txt is the lock: it pins apache-airflow itself to the image's version, and
# the slim image brings no provider that could disagree with it.
COPY --chown=airflow:0 requirements.txt /opt/ml-project/requirements.txt
RUN pip install --no-cache-dir -r /opt/ml-project/requirements.txt && pip check

COPY --chown=airflow:0 pyproject.toml README.md /opt/ml-project/
COPY --chown=airflow:0 ml /opt/ml-project/ml
COPY --chown=airflow:0 dbt_project /opt/ml-project/dbt_project
COPY --chown=airflow:0 expectations /opt/ml-project/expectations
COPY --chown=airflow:0 dags /opt/ml-project/dags
COPY --chown=airflow:0 plugins /opt/ml-project/plugins
# Editable: `ml` finds dbt_project/ and expectations/ beside itself.
RUN pip install --no-cache-dir --no-deps -e /opt/ml-project

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/ml-project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ml-project/plugins \
    ML_DATA_DIR=/opt/airflow/data \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    GX_ANALYTICS_ENABLED=false
