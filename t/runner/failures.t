# Self-test of our Test::Nginx runner: every kind of check must be able
# to fail.  A test file whose expectations are all wrong is run with the
# runner in a child perl; its TAP output must show exactly the failures
# listed here, and the one correct block must pass.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use Test::More;

my $lib = "$FindBin::Bin/../lib";
my $dir = tempdir('runner-failures-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my %expected_failures = map { $_ => 1 } (
    'TEST 1: wrong body - response_body - response is expected (req 0)',
    'TEST 2: wrong status - status code ok',
    'TEST 3: wrong headers - header X-Test ok',
    'TEST 3: wrong headers - header X-Other not present in the raw headers',
    'TEST 4: wrong body regex - response_body_like - response is expected '
        . '(hello)',
    'TEST 5: missing error.log line - pattern "no line says this" matches '
        . 'a line in error.log (req 0)',
    'ERROR: client socket timed out - TEST 7: timeout without abort',
    'TEST 8: broken config - nginx started',
    'TEST 9: undefined variable - No environment '
        . 'TEST_NGINX_NOT_DEFINED_ANYWHERE defined.',
    'TEST 10: wrong header regex - header X-Test like ok',
    'TEST 11: wrong raw headers - raw resp headers like',
    'TEST 12: second of two requests wrong - status code ok',
    'TEST 14: failing body check - custom check',
);

# TEST 6's message holds the matching line; only its start is known
my $unwanted_log_line = 'TEST 6: unwanted error.log line - pattern '
                        . '"[error]" should not match any line in error.log';

open my $t, '>', "$dir/all-wrong.t" or die $!;
print $t <<'_EOT_';
use Test::Nginx::Socket 'no_plan';

add_response_body_check(sub {
    my ($block, $body) = @_;
    return if !defined $block->want_x;
    is($body, 'x', $block->name . ' - custom check');
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: wrong body
--- config
    location /t { add_header X-Test yes; add_header X-Other 1; return 200 "hello\n"; }
--- request
GET /t
--- response_body
goodbye

=== TEST 2: wrong status
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- error_code: 201

=== TEST 3: wrong headers
--- config
    location /t { add_header X-Test yes; add_header X-Other 1; return 200 "hello\n"; }
--- request
GET /t
--- response_headers
X-Test: no
!X-Other

=== TEST 4: wrong body regex
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body_like: ^bye

=== TEST 5: missing error.log line
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- error_log
no line says this

=== TEST 6: unwanted error.log line
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /missing
--- error_code: 404
--- no_error_log
[error]

=== TEST 7: timeout without abort
--- init
open my $out, '>', html_dir() . '/big' or die $!;
print $out 'x' x 1_000_000;
close $out;
--- config
    location /slow { limit_rate 4k; alias $TEST_NGINX_HTML/big; }
--- request
GET /slow
--- timeout: 300ms
--- response_body_like: ^x+$

=== TEST 8: broken config
--- config
    location /t { no_such_directive_anywhere on; }
--- request
GET /t

=== TEST 9: undefined variable
--- config
    location /t { return 200 "$TEST_NGINX_NOT_DEFINED_ANYWHERE"; }
--- request
GET /t

=== TEST 10: wrong header regex
--- config
    location /t { add_header X-Test yes; return 200 "hello\n"; }
--- request
GET /t
--- response_headers_like
X-Test: n.*

=== TEST 11: wrong raw headers
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- raw_response_headers_like: ^HTTP/1\.0

=== TEST 12: second of two requests wrong
--- config
    location /t { return 200 "hello\n"; }
--- request eval
["GET /t", "GET /t"]
--- error_code eval
[200, 500]

=== TEST 13: correct
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body
hello

=== TEST 14: failing body check
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- want_x
_EOT_
close $t;

$ENV{TEST_NGINX_SERVROOT} = "$dir/servroot";
$ENV{TEST_NGINX_HTML} = "$dir/servroot/html";
my $tap = `$^X -I$lib $dir/all-wrong.t 2>$dir/stderr`;
my $status = $? >> 8;

my (%failed, %passed);
for (split /\n/, $tap) {
    if (/^not ok \d+ - (.*?)\s*$/) {
        $failed{$1} = 1;
    } elsif (/^ok \d+ - (.*?)\s*$/) {
        $passed{$1} = 1;
    }
}

for my $name (sort keys %expected_failures) {
    ok($failed{$name}, "fails: $name");
}

ok((grep { index($_, $unwanted_log_line) == 0 } keys %failed),
   "fails: $unwanted_log_line ...");

my @unexpected = grep {
    !$expected_failures{$_} && index($_, $unwanted_log_line) != 0
} sort keys %failed;
is("@unexpected", '', 'no other test failed');

ok($passed{'TEST 13: correct - status code ok'}
   && $passed{'TEST 13: correct - response_body - response is expected '
               . '(req 0)'},
   'the correct block passes');
ok($passed{'TEST 12: second of two requests wrong - status code ok'},
   'the correct first request of TEST 12 passes');
is($status, scalar(keys %failed), 'exit status counts the failures');

# TEST_NGINX_LOAD_MODULES: one load_module line each, at the top
{
    local $ENV{TEST_NGINX_LOAD_MODULES} = '/nonexistent/a.so /nonexistent/b.so';
    my $out = `$^X -I$lib $dir/all-wrong.t 2>&1`;
    like($out, qr/^not ok 1 - TEST 1: wrong body - nginx started$/m,
         'nginx cannot start with modules that do not exist');
    like($out, qr{/nonexistent/a\.so}, 'and says which one');
    open my $in, '<', "$dir/servroot/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    like($conf, qr{\A(?:\#[^\n]*\n)*load_module\ /nonexistent/a\.so;\n
                   load_module\ /nonexistent/b\.so;\n}x,
         'the load_module lines open nginx.conf');
}

if (!Test::More->builder->is_passing) {
    diag("TAP of the run:\n$tap");
    diag("stderr:\n" . do { local (@ARGV, $/) = "$dir/stderr"; <> });
}

done_testing();
