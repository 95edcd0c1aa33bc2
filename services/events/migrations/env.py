from services.common.migrations_env import run
from services.events.models import Base

run(Base.metadata)
