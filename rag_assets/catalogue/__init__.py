"""The source catalogue: one YAML file naming the user's source tables, what their columns mean
and where their changes arrive (`RAG_SOURCE_CATALOGUE`; the demo's catalogue by default)."""

from rag_assets.catalogue.active import CATALOGUE_ENV, active_catalogue, catalogue_path
from rag_assets.catalogue.loader import CatalogueError, load_catalogue, parse_catalogue
from rag_assets.catalogue.model import Catalogue, SourceTable

__all__ = ["CATALOGUE_ENV", "Catalogue", "CatalogueError", "SourceTable", "active_catalogue",
           "catalogue_path", "load_catalogue", "parse_catalogue"]
