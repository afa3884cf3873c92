# The image every Airflow service of docker-compose.yaml runs: the official Airflow image
# with the project's pinned dependencies, the `ml` package, the DAGs, the plugin, the dbt
# project and the expectation suites.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# requirements.txt is the lock (it pins apache-airflow itself to the image's version).
COPY --chown=airflow:root requirements.txt /opt/ml-project/requirements.txt
RUN pip install --no-cache-dir -r /opt/ml-project/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/ml-project/
COPY --chown=airflow:root ml /opt/ml-project/ml
COPY --chown=airflow:root dbt_project /opt/ml-project/dbt_project
COPY --chown=airflow:root expectations /opt/ml-project/expectations
COPY --chown=airflow:root dags /opt/ml-project/dags
COPY --chown=airflow:root plugins /opt/ml-project/plugins
# Editable: `ml` finds dbt_project/ and expectations/ beside itself.
RUN pip install --no-cache-dir --no-deps -e /opt/ml-project

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/ml-project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ml-project/plugins \
    ML_DATA_DIR=/opt/airflow/data \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    GX_ANALYTICS_ENABLED=false
