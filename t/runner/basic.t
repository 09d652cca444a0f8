# Self-test of our Test::Nginx runner (t/lib) against plain nginx: each
# block exercises one section.  t/runner/failures.t shows the same checks
# failing when the expectation is wrong.

use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_GREETING} = 'hello from env';

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if !defined $block->body_length;
    is(length($body // ''), $block->body_length,
       $block->name . " - body length (req $repeated_req_idx)");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: status, headers and body
--- config
    location /t {
        add_header X-Test yes;
        return 200 "hello\n";
    }
--- request
GET /t
--- error_code: 200
--- response_headers
X-Test: yes
Content-Length: 6
!X-Absent
--- response_body
hello
--- body_length: 6
--- no_error_log
[error]



=== TEST 2: other status codes, error.log lines
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /missing
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
open() "
No such file or directory



=== TEST 3: error_log and no_error_log with eval'ed regexes
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /missing
--- error_code: 404
--- error_log eval
[qr/\[error\] \d+#\d+: \*\d+ open\(\)/, qr/missing/]
--- no_error_log eval
[qr/\[alert\]/, qr/\[emerg\]/]



=== TEST 4: HEAD has no body
--- config
    location /t { return 200 "hello\n"; }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body
--- body_length: 0



=== TEST 5: HTTP/1.1 by default: a chunked body is decoded
--- config
    location /t {
        sub_filter_types *;
        sub_filter 'hello' 'howdy';
        sub_filter_once off;
        return 200 "hello\nhello\n";
    }
--- request
GET /t
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_headers
Transfer-Encoding: chunked
--- response_body
howdy
howdy



=== TEST 6: HTTP/1.0 as asked: close-delimited body
--- config
    location /t {
        sub_filter_types *;
        sub_filter 'hello' 'howdy';
        sub_filter_once off;
        return 200 "hello\nhello\n";
    }
--- request
GET /t HTTP/1.0
--- response_headers
!Transfer-Encoding
!Content-Length
--- response_body
howdy
howdy
--- body_length: 12



=== TEST 7: the request line reaches nginx as written
--- config
    location /t { return 200 "$request $http_host $http_connection\n"; }
--- request
GET /t?a=1
--- response_body
GET /t?a=1 HTTP/1.1 localhost close



=== TEST 8: more_headers and a request body
--- config
    location /t { return 200 "$http_x_foo $content_length\n"; }
--- more_headers
X-Foo: bar
--- request
POST /t
abcd
--- response_body
bar 4



=== TEST 9: $TEST_NGINX_ variables in the configuration
--- main_config
env TEST_NGINX_GREETING;
--- http_config
    map $uri $greeting {
        default "$TEST_NGINX_GREETING";
    }
--- config
    location /t { return 200 "$greeting on $TEST_NGINX_SERVER_PORT\n"; }
--- request
GET /t
--- response_body eval
"hello from env on $ENV{TEST_NGINX_SERVER_PORT}\n"



=== TEST 10: --- init runs before the request
--- init
open my $out, '>', html_dir() . '/made-by-init.txt' or die $!;
print $out "written by init\n";
close $out;
--- config
--- request
GET /made-by-init.txt
--- response_body
written by init



=== TEST 11: request eval with several requests and arrays of results
--- config
    location /a { return 200 "A\n"; }
    location /b { return 403; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 403]
--- response_body_like eval
[qr/^A$/m, qr/403 Forbidden/]



=== TEST 12: pipelined requests on one connection
--- config
    location /a { return 200 "A\n"; }
    location /b { return 200 "BB\n"; }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["A\n", "BB\n"]



=== TEST 13: raw_request is sent as is
--- config
    location /t { return 200 "$server_protocol\n"; }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_body
HTTP/1.0



=== TEST 14: response_body eval with a regex
--- config
    location /t { return 200 "abc 123\n"; }
--- request
GET /t
--- response_body eval
qr/^abc \d+$/m



=== TEST 15: response_headers_like
--- config
    location /t { return 200 "x"; }
--- request
GET /t
--- response_headers_like
Server: nginx.*
Content-Length: \d



=== TEST 16: skip_eval
--- skip_eval: 2: 1
--- config
    location /t { return 500; }
--- request
GET /t
--- error_code: 200
--- response_body
never checked



=== TEST 17: log_level per block
--- log_level: info
--- config
    location /t { return 200 "x"; }
--- request
GET /t
--- no_error_log
[debug]
