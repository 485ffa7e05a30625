"""The API's request and response bodies (pydantic), separate from the tables."""
