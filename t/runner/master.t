# Self-test of our Test::Nginx runner: master_on(), workers(),
# log_level() and env_to_nginx() reach the generated nginx.conf and the
# running nginx.

use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
log_level('info');
env_to_nginx('RUNNER_ENV_CHECK=abc');

sub slurp {
    my ($path) = @_;
    open my $in, '<', $path or die "$path: $!";
    local $/;
    return scalar <$in>;
}

add_response_body_check(sub {
    my ($block, $body) = @_;
    my $name = $block->name;
    my $conf = slurp(server_root() . '/conf/nginx.conf');
    my $master = slurp(server_root() . '/logs/nginx.pid');
    my ($log, @started);

    # the master may still be logging the second fork: poll, with a limit
    my $deadline = time + 5;
    while (1) {
        $log = slurp(server_root() . '/logs/error.log');
        @started = $log =~ /start worker process \d+/g;
        last if @started >= 2 || time > $deadline;
        select(undef, undef, undef, 0.05);
    }

    like($conf, qr/^master_process on;$/m, "$name - master_process on");
    like($conf, qr/^worker_processes\s+2;$/m, "$name - two workers");
    like($conf, qr/^env RUNNER_ENV_CHECK=abc;$/m, "$name - env line");
    is(scalar @started, 2, "$name - two workers started");
    chomp $master;
    isnt($body, "$master\n", "$name - a worker, not the master, answered");
});

run_tests();

__DATA__

=== TEST 1: master and workers
--- config
    location /t { return 200 "$pid\n"; }
--- request
GET /t
--- response_body_like: ^\d+$
--- no_error_log
[debug]
