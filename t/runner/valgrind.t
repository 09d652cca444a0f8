# Self-test of our Test::Nginx runner's TEST_NGINX_USE_VALGRIND mode: a
# block passes with nginx running under memcheck, and memcheck's reports
# of leaks and invalid accesses become test failures.

use strict;
use warnings;

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FindBin;
use Test::More;

# make test SANITIZE=1 runs nginx through a wrapper with the ASan
# runtime preloaded, which valgrind cannot run
plan skip_all => 'valgrind and the ASan build of nginx do not mix'
    if ($ENV{TEST_NGINX_LOAD_MODULES} // '') =~ m{/nginx-asan/};

my $lib = "$FindBin::Bin/../lib";
my $dir = tempdir('runner-valgrind-XXXXXX', TMPDIR => 1, CLEANUP => 1);

$ENV{TEST_NGINX_SERVROOT} = "$dir/servroot";

open my $t, '>', "$dir/under-valgrind.t" or die $!;
print $t <<'_EOT_';
use Test::Nginx::Socket 'no_plan';

add_response_body_check(sub {
    my ($block) = @_;
    my $exe = readlink "/proc/$Test::Nginx::Util::NginxPid/exe" // '';
    like($exe, qr/memcheck|valgrind/, $block->name . ' - nginx runs under valgrind');
});

run_tests();

__DATA__

=== TEST 1: under valgrind
--- config
    location /t { return 200 "hello\n"; }
--- request
GET /t
--- response_body
hello
_EOT_
close $t;

my $tap = `TEST_NGINX_USE_VALGRIND=1 $^X -I$lib $dir/under-valgrind.t 2>&1`;
is($? >> 8, 0, 'the block passes under valgrind') or diag($tap);
like($tap, qr/^ok \d+ - TEST 1: under valgrind - nginx runs under valgrind$/m,
     'nginx ran under memcheck');
like($tap, qr/^ok \d+ - TEST 1: under valgrind - response_body/m,
     'and answered');

# memcheck's findings, as valgrind writes them, must fail the block
for my $report ('40 bytes in 1 blocks are definitely lost in loss record 1',
                'Invalid read of size 8',
                'Conditional jump or move depends on uninitialised value(s)')
{
    make_path("$dir/servroot/logs");
    open my $log, '>', "$dir/servroot/logs/valgrind.4242.log" or die $!;
    print $log "==4242== $report\n==4242==    at 0x4848899: malloc\n";
    close $log;

    my $out = `$^X -I$lib -MTest::More=no_plan -MTest::Nginx::Util -e 'Test::Nginx::Util::check_valgrind_logs("TEST 9: x")' 2>&1`;
    like($out, qr/^not ok 1 - TEST 9: x - valgrind found memory errors$/m,
         "fails on: $report");
}

open my $log, '>', "$dir/servroot/logs/valgrind.4243.log" or die $!;
close $log;
my $out = `$^X -I$lib -MTest::More=no_plan -MTest::Nginx::Util -e 'Test::Nginx::Util::check_valgrind_logs("TEST 9: x"); Test::More::pass("end")' 2>&1`;
unlike($out, qr/not ok/, 'an empty valgrind log is no failure');

done_testing();
