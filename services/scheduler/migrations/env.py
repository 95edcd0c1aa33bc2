from services.common.migrations_env import run
from services.scheduler.models import Base

run(Base.metadata)
