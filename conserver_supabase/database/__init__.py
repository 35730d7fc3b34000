"""The seam to the database: one small interface, one implementation per transport.

Both transports call the same SQL functions (``conserver_vcon_*``, shipped in
``conserver_supabase/sql``), so they behave alike; they differ only in how the
call travels (psycopg over the PostgreSQL protocol, or supabase-py over PostgREST).
"""

from __future__ import annotations

from .base import Database

__all__ = ["Database"]
