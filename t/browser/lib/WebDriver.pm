package WebDriver;

# The few W3C WebDriver commands the browser tests need, spoken to
# Debian's chromedriver over HTTP with LWP: a headless Chromium with a
# fresh profile, navigation, scripts, screenshots.

use strict;
use warnings;

use File::Temp qw(tempdir);
use HTTP::Request;
use IO::Socket::INET;
use JSON::PP;
use LWP::UserAgent;
use MIME::Base64 qw(decode_base64);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our $CHROMIUM = $ENV{CHROMIUM} || '/usr/bin/chromium';
our $CHROMEDRIVER = $ENV{CHROMEDRIVER} || '/usr/bin/chromedriver';

# the element reference's key in W3C WebDriver answers
my $ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

my $json = JSON::PP->new->utf8->canonical;


sub available {
    return -x $CHROMIUM && -x $CHROMEDRIVER;
}


# WebDriver->start(log => FILE, downloads => DIR, width => 1000,
#                  height => 800)

sub start {
    my ($class, %opt) = @_;

    my $self = bless {
        ua => LWP::UserAgent->new(timeout => 60),
        profile => tempdir('chromium-profile-XXXXXX', TMPDIR => 1,
                           CLEANUP => 1),
    }, $class;

    $self->{port} = free_port();
    $self->{base} = "http://127.0.0.1:$self->{port}";

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        # a process group of its own: quit() ends chromedriver and every
        # browser process it started, even if the session was never ended
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $opt{log} || '/dev/null' or die "$opt{log}: $!";
        open STDERR, '>&', \*STDOUT;
        exec $CHROMEDRIVER, "--port=$self->{port}";
        die "exec $CHROMEDRIVER: $!";
    }

    $self->{pid} = $pid;

    my $deadline = time + 20;
    until (eval { $self->call(GET => '/status')->{ready} }) {
        die "chromedriver did not start (see $opt{log})\n"
            if time > $deadline || waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }

    my $size = ($opt{width} || 1000) . ',' . ($opt{height} || 800);

    my $session = $self->call(POST => '/session', {
        capabilities => { alwaysMatch => {
            browserName => 'chrome',
            pageLoadStrategy => 'normal',
            timeouts => { pageLoad => 30000, script => 10000 },
            'goog:chromeOptions' => {
                binary => $CHROMIUM,
                prefs => {
                    'download.default_directory' => $opt{downloads}
                                                    || $self->{profile},
                    'download.prompt_for_download' => JSON::PP::false,
                },
                args => [
                    '--headless', '--no-sandbox', '--disable-gpu',
                    '--disable-background-networking',
                    '--disable-component-update', '--disable-sync',
                    '--no-first-run', '--disable-dev-shm-usage',
                    "--user-data-dir=$self->{profile}",
                    "--window-size=$size",
                ],
            },
        } },
    });

    $self->{session} = $session->{sessionId}
        or die "chromedriver gave no session\n";

    return $self;
}


sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1)
        or die "cannot find a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}


# call(METHOD, PATH, BODY): the answer's "value", or die with its message

sub call {
    my ($self, $method, $path, $body) = @_;

    my $req = HTTP::Request->new($method => $self->{base} . $path);

    if ($method eq 'POST') {
        $req->header('Content-Type' => 'application/json');
        $req->content($json->encode($body || {}));
    }

    my $res = $self->{ua}->request($req);
    my $answer = eval { $json->decode($res->decoded_content) };

    if (!$res->is_success || !$answer) {
        my $v = $answer && $answer->{value};
        die "WebDriver $method $path: "
            . ($v && ref $v eq 'HASH' ? "$v->{error}: $v->{message}"
                                       : $res->status_line) . "\n";
    }

    return $answer->{value};
}


sub session_call {
    my ($self, $method, $path, $body) = @_;
    return $self->call($method, "/session/$self->{session}$path", $body);
}


sub get {
    my ($self, $url) = @_;
    $self->session_call(POST => '/url', { url => $url });
}


# script(JS, ARGS...): runs JS as a function body, returns its value

sub script {
    my ($self, $js, @args) = @_;
    return $self->session_call(POST => '/execute/sync',
                               { script => $js, args => \@args });
}


sub element {
    my ($self, $css) = @_;
    my $el = $self->session_call(POST => '/element',
                                 { using => 'css selector', value => $css });
    return $el->{$ELEMENT};
}


# screenshot(CSS): PNG bytes of the first element CSS selects, or of the
# whole page without CSS

sub screenshot {
    my ($self, $css) = @_;

    my $path = defined $css ? '/element/' . $self->element($css) : '';

    return decode_base64($self->session_call(GET => "$path/screenshot"));
}


sub click {
    my ($self, $css) = @_;
    $self->session_call(POST => '/element/' . $self->element($css) . '/click');
}


sub quit {
    my ($self) = @_;

    if ($self->{session}) {
        eval { $self->session_call(DELETE => '') };
        delete $self->{session};
    }

    if ($self->{pid}) {
        kill TERM => -$self->{pid};
        my $deadline = time + 10;
        while (waitpid($self->{pid}, WNOHANG) == 0) {
            if (time > $deadline) {
                kill KILL => -$self->{pid};
                waitpid $self->{pid}, 0;
                last;
            }
            sleep 0.1;
        }
        # the browser's own processes, should chromedriver not have ended them
        kill KILL => -$self->{pid};
        delete $self->{pid};
    }
}


sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->quit;
}


1;
