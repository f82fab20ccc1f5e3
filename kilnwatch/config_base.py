"""What every model of the plant file shares."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A plant-file section: an unknown key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")
