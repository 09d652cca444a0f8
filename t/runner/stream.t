# Self-test of our Test::Nginx runner: responses that do not end within
# the timeout.  With --- abort the timeout is not a failure and the checks
# run on what arrived; t/runner/failures.t shows the failure without it.

use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_SERVROOT_HTML} = html_dir();

# the slow response: 1 MB sent at 4 KB/s never completes within a test
my $Size = 1_000_000;

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(init => <<'_EOI_') if !defined $block->init;
open my $out, '>', html_dir() . '/big' or die $!;
print $out 'x' x 1_000_000;
close $out;
_EOI_
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx) = @_;
    my $name = $block->name;

    return if !defined $block->cut_short;
    ok(length($body // '') > 0, "$name - some of the body arrived");
    ok(length($body // '') < $Size, "$name - the body was cut short");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: slow response, timeout in seconds, abort
--- config
    location /slow { limit_rate 4k; alias $TEST_NGINX_SERVROOT_HTML/big; }
--- request
GET /slow
--- timeout: 1
--- abort
--- response_headers
Content-Length: 1000000
--- response_body_like: ^x+$
--- cut_short



=== TEST 2: timeout in milliseconds, close-delimited body
--- config
    location /slow { limit_rate 4k; alias $TEST_NGINX_SERVROOT_HTML/big; }
--- request
GET /slow HTTP/1.0
--- timeout: 500ms
--- abort
--- response_body_like: ^x+$
--- cut_short



=== TEST 3: a chunked body cut by the timeout keeps its complete chunks
--- config
    location /slow {
        # fast enough for a few 32 KB chunks to complete in time
        limit_rate 100k;
        sub_filter_types *;
        sub_filter 'y' 'z';
        alias $TEST_NGINX_SERVROOT_HTML/big;
    }
--- request
GET /slow
--- timeout: 1
--- abort
--- response_headers
Transfer-Encoding: chunked
--- response_body_like: ^x+$
--- cut_short
