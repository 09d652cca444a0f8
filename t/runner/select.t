# Self-test of our Test::Nginx runner: --- SKIP and --- LAST blocks.  The
# skipped and the trailing blocks would fail if they ran, and the plan
# counts only the checks of the two blocks that must run.

use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket;

plan tests => 4;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: runs
--- config
    location /t { return 200 "one\n"; }
--- request
GET /t
--- response_body
one



=== TEST 2: skipped
--- SKIP
--- config
    location /t { return 500; }
--- request
GET /t
--- response_body
never



=== TEST 3: last to run
--- LAST
--- config
    location /t { return 200 "three\n"; }
--- request
GET /t
--- response_body
three



=== TEST 4: after LAST
--- config
    location /t { return 500; }
--- request
GET /t
--- response_body
never
