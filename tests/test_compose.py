"""docker-compose.yml: valid Compose, and the stack the orchestration issue asks for.

No Docker engine is needed: the file is checked against the Compose
specification's JSON schema (the copy that check-jsonschema ships, pinned by
its version) and its content is read as data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def _validator(schema: dict) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_is_valid_against_the_compose_specification(compose, compose_schema):
    errors = sorted(_validator(compose_schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_rejects_a_broken_compose_file(compose, compose_schema):
    """The check above can fail: a misspelt key and an unknown condition are caught."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    gpu = broken["services"]["airflow-worker-gpu"]
    gpu["depends_on"]["airflow-init"]["condition"] = "service_finished"
    paths = {tuple(e.absolute_path) for e in _validator(compose_schema).iter_errors(broken)}
    assert ("services", "redis") in paths
    assert any(p[:3] == ("services", "airflow-worker-gpu", "depends_on") for p in paths)


def test_every_service_of_the_stack_is_there(compose):
    assert {"postgres", "redis"} | AIRFLOW_SERVICES <= set(compose["services"])


def _command(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _queues(command: str) -> set[str]:
    match = re.search(r"--queues[ =](\S+)", command)
    assert match, f"worker command names no queues: {command}"
    return set(match.group(1).strip("'\"").split(","))


def test_cpu_worker_takes_the_default_queue_and_gpu_worker_only_gpu(compose):
    services = compose["services"]
    cpu, gpu = services["airflow-worker"], services["airflow-worker-gpu"]
    assert "celery worker" in _command(cpu) and "celery worker" in _command(gpu)
    assert _queues(_command(cpu)) == {"default"}
    assert _queues(_command(gpu)) == {"gpu"}
    assert "--concurrency 1" in _command(gpu)


def test_gpu_worker_reserves_an_nvidia_gpu_and_is_built_with_cuda_tensorflow(compose):
    gpu = compose["services"]["airflow-worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    dockerfile = ROOT / gpu["build"]["context"] / gpu["build"]["dockerfile"]
    assert "tensorflow[and-cuda]" in dockerfile.read_text()
    cpu_dockerfile = ROOT / "docker" / "Dockerfile"
    assert "and-cuda" not in cpu_dockerfile.read_text()


def test_workers_share_the_model_and_extract_volumes(compose):
    services, volumes = compose["services"], set(compose["volumes"])

    def mounts(name: str) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in services[name].get("volumes", []))
        return {target: source for source, target in pairs}

    cpu, gpu = mounts("airflow-worker"), mounts("airflow-worker-gpu")
    for target in ("/opt/crimejob/models", "/opt/crimejob/data"):
        assert cpu[target] == gpu[target]
        assert cpu[target] in volumes  # a named volume, not a container's own disk
    env = services["airflow-worker-gpu"]["environment"]
    assert env["CRIMEJOB_MODEL_DIR"] == "/opt/crimejob/models"


def test_airflow_metadata_and_crimejob_data_are_separate_databases(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
    init_sql = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE airflow" in init_sql and "CREATE DATABASE crimejob" in init_sql
    mounted = compose["services"]["postgres"]["volumes"]
    initdb = "./docker/postgres-init.sh:/docker-entrypoint-initdb.d/"
    assert any(v.startswith(initdb) for v in mounted)


def test_airflow_init_migrates_creates_the_gpu_pool_and_the_connection(compose):
    init = compose["services"]["airflow-init"]
    script = ROOT / "docker" / Path(init["command"][0]).name
    text = script.read_text()
    assert "airflow db migrate" in text
    assert re.search(r"airflow pools set gpu 1\b", text)
    assert "airflow connections add crimejob_db" in text
    assert "crimejob db upgrade" in text
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = compose["services"][name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name


@pytest.mark.parametrize("script", ["docker/airflow-init.sh", "docker/postgres-init.sh"])
def test_shell_scripts_parse(script):
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dockerfiles_copy_only_files_that_exist():
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        for line in (ROOT / dockerfile).read_text().splitlines():
            if line.startswith("COPY"):
                sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), f"{dockerfile}: {source} does not exist"


def test_build_context_sends_what_the_dockerfiles_copy():
    """Each Dockerfile's own .dockerignore excludes everything but what it copies."""
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        ignore = (ROOT / f"{dockerfile}.dockerignore").read_text().splitlines()
        assert "*" in ignore  # .venv, .crimejob, models and .git stay out of the context
        kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
        for line in (ROOT / dockerfile).read_text().splitlines():
            if line.startswith("COPY"):
                for source in (w for w in line.split()[1:-1] if not w.startswith("--")):
                    assert source.rstrip("/") in kept, f"{dockerfile}: {source} is ignored"


_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN")


def _environment_values(compose: dict):
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            yield name, key, str(value)


def test_no_secret_is_written_in_the_compose_file(compose):
    """Every password, key and token comes from .env, never a literal."""
    for service, key, value in _environment_values(compose):
        if _SECRET_NAME.search(key) or re.search(r"://[^/@]*:[^/@]*@", value):
            literal = _INTERPOLATION.sub("", value)
            assert not re.search(r":[^/@:]+@", literal), f"{service}.{key} holds a password"
            if _SECRET_NAME.search(key):
                assert _INTERPOLATION.search(value), f"{service}.{key} is not from .env"


def test_env_example_names_every_required_variable(compose):
    required = {
        match.group(1)
        for match in _INTERPOLATION.finditer(COMPOSE.read_text())
        if (match.group(2) or "").startswith(":?")
    }
    assert required, "compose file requires no variable from .env"
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example), required - set(example)
    for name in required:
        if _SECRET_NAME.search(name):
            assert example[name] == "change-me", f".env.example ships a value for {name}"
