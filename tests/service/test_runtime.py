from service.core.runtime import with_database, with_redis_db


def test_urls_keep_their_shape_when_pointed_elsewhere():
    assert with_redis_db("unix:///tmp/q/redis.sock", 15) == "unix:///tmp/q/redis.sock?db=15"
    assert with_redis_db("redis://127.0.0.1:6379/0", 15) == "redis://127.0.0.1:6379/15"
    assert with_database("postgresql://postgres@127.0.0.1:5432/test", "x") == "postgresql://postgres@127.0.0.1:5432/x"
    assert with_database("postgresql://postgres@/postgres?host=/tmp/pg", "x") == "postgresql://postgres@/x?host=/tmp/pg"
