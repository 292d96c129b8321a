"""moto's server (the venv's moto[server]) answering one request at a time, as the DynamoDB that
the DynamoDB tests run on: python .ci/moto-dynamodb.py <port>  (listens on 127.0.0.1).

`moto_server` serves each request in a thread of its own, and its DynamoDB is not safe under that:
a `TransactWriteItems` starts by copying every table it touches and, when cancelled, puts those
copies back, undoing whatever other clients wrote to the table meanwhile; and a condition is checked
and its write applied without a lock. Real DynamoDB does neither: each single-item write and each
transaction is atomic. Served one at a time, every call here is atomic too; concurrency between
calls (another writer moving a counter between `increment`'s read and its conditional write) is
what remains, as on DynamoDB.
"""

import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
